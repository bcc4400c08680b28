"""English words and frequent acronyms that are also company names (or the first word of one).

A one-word company name from this list ("Target", "Shell", "Live") is ordinary text unless the
headline gives a sign that the company is meant (see `tapeflow.news.tickers`). The list was
made once: every one-word SEC name, and every first word of a longer one, that occurs in lower
case in the 11,931 headlines of the twitter-financial-news set (the labelled ticker headlines
left out), plus common words added by hand. `PROPER_WORDS` was written by hand: first names, people in the
news, places, days and months, indices and sources that headlines quote. Both are data, not
dictionaries: extend them when a name fires on ordinary words.
"""

from __future__ import annotations

COMMON_WORDS: frozenset[str] = frozenset(
    """
companhia compania compagnie banco grupo societe sociedad empresa empresas industrias
dna weed
north south main street tiger click embrace guru society hall indigo pine advent dragonfly compass metro
alarm cars fabric jet law nature people garden agm esg spac ebitda ffo nav usd eur gbp jpy cny otc ico nft api iot saas crm erp etn boe boj pboc rbi snb cdc nhs nba nfl mlb abc cbs nbc cnn bbc cpi pmi ppi
able above ac access acco achieve ads advance advanced advantage aero agree agriculture ai aim
air align all alliance ally alternative alto aluminum am ambitions angle apartment apex arm
array arrive arrived art artificial ascend assured atrium au authentic auto aware axe balance
ball bank bar barrel bell benchmark best better beyond bicycle big bill billion bio bit bitcoin
black blend block blockchain blue bold bon boost boot box brady brand breeze bright buckle build
builders bullish bumble burning business cable calm can canary cannabis capital cardio caring
carnival carrier carter carters catalyst cell central century ceo cfo chain champions chart
charter chase check cheetah chefs chemical choice church circle citizens city cl clean clear
climb co coffee cohen commerce commercial community complete concrete consensus conservative
construction consumer consumers context copper core crane crawford creative credit critical
cross crown crypto cullen customers cyber daily dana darling data dave deep defense design
digital dime direct discount distribution dollar domino don donaldson dover dream drilling
driven drugs earth east eastern eat ecb eco educational el electric electricity electronic
element elite else embassy emerald emerging eminent empire employers endi energy enhanced ennis
eps equity etf eu euro ev eve everything exp expand extra extreme fact fair family farmers fast
fat fate fda fed federal fifth figure finance financial first five flag flex floor fly focus
fold foreign forge fortress fortune forward fossil foster founder four fox franklin free freedom
freight frequency fresh frontier fuel full future gain games gaming gap gas gdp gen general
generate generation genius genuine giant glass glimpse global globe go gold golden good grab
grace graham grand gravity great greater green grocery group grown growth grupo gt guided ha
hacker hackett hamilton hammer hang happy hawkins health healthcare healthy hello here heritage
hf hi high highway hold home honest hope horizon host hot hour hub hunt icon idea im imf impact
income independence independent industrial information ing innovative insight inspired
integrated intelligent international invest investors ipo iron it jackpot jefferson joint karat
key king kirby knowles la ladder lands launch lead leader lear legacy legend liberty life
lifetime light limitless lincoln lindsay lion liquidity lithium little live living loan local
long longevity macro made madison magic main man marcus marker mass match medical mega megan
merchants metal metals mid milestone military mint mixed mobile monster morgan morningstar
mountain moving multi music my nation national natural net network new news next nice noble non
northern northwestern nu nyse off oil old on once oncology one onto opec open option or oracle
orange origin orion our outlook oz packaging paid park parks parsons pattern pdf pearson peoples
perfect performance pharma pioneer planet plastic platinum plus pony pop popular porch post
power preferred premier premium price prime prince principal priority pro professional progress
progressive prosperity pt public pursuit quality quantum quest rail rand range rapid rare rave
re reading ready real recharge red regional regions regis relevant renew rent research reserve
resolution resources rest restaurant revolution rhythm rice rich right ring rise rising robot
rocket rogers root royal royalty runway rush safe safety saga sap science scientific scientist
sea sec security seek senior senti serve service seven shake sharing shell shoe shore si sight
silicon silver sinclair site six sixth sk sky sleep slide smart snap snow snowflake so social
software solid sound source southern space spark special spectrum speed spire sports square st
stablecoin standard star stark start state stealth steel stellar stem sterling stock stoke stone
strategic strategy stride strive structure structured studio summit super surge sustainable
synergy table take tap target te team tech technology telecom ten th third tier tiny titan toll
ton top toro total track trade transportation travel trees tri trillion trio triple troops turn
turning turtle twin twist two uae uk ultra under union united universal university unusual up ur
uranium urban us usa value venture versus via victory video village visa vision vs warren
washington waste wave wealth wearable western where white wing winners winning wise work world
worldwide wrap zoom
""".split()
)

PROPER_WORDS: frozenset[str] = frozenset(
    """
latam williams smith jones brown davis miller wilson moore taylor anderson jackson harris thompson garcia
martinez robinson clark lewis walker allen young wright nelson hill campbell mitchell roberts phillips evans
turner parker collins edwards stewart morris murphy cook cooper peterson bailey reed howard ward richardson
watson brooks bennett gray hughes myers ross foster
greek austin cantor baird
jersey zealand carolina virginia georgia dakota hampshire orleans francisco angeles vegas diego jose arizona nevada colorado utah oregon alaska hawaii kentucky tennessee alabama louisiana oklahoma kansas missouri iowa indiana illinois wisconsin minnesota pennsylvania maryland massachusetts connecticut delaware maine vermont montana idaho wyoming nebraska arkansas mississippi citi piper
aaron ackman adam africa african alan albert alex alexander alice allen amanda america american
americas amy andrew angela ann anna anthony april argentina arthur asia asian atlanta atlantic
august australia australian austria barbara beijing belgium ben benjamin berlin bernard bernie
betty bezos biden bill billy bloomberg bob bobby boris boston brad brazil brazilian brian
britain british bruce brussels buffett bush california canada canadian carl carlos carol
catherine charles charlie chicago chile china chinese chris christian christmas christopher
chuck clara clinton cnbc colombia craig cramer dalio dallas dan daniel david dean december delhi
denmark dennis denver detroit diana diane dimon donald doug douglas dow draghi dubai dutch
easter ed edward egypt elizabeth ellen elon emily emma england english eric europe european
factset february finland florida fox france frank frankfurt franklin fred french friday gary
gates geneva george german germany gordon grace greece greg gregory gulf hamilton harold harry
helen henry hong houston howard hungary ian icahn india indian indonesia iran iraq ireland irish
israel israeli italian italy jack jacob james jamie jane janet january japan japanese jason jay
jeff jefferson jeffrey jennifer jerome jerry jessica jim joe john johnson jonathan jordan joseph
josh judy julia july june karen kate kathy keith kelly ken kennedy kenneth kevin kim kong korea
korean kudlow lagarde larry latin laura lawrence lee leo lighthizer lincoln linda lisa london
louis lucy luis macron madison madrid malaysia march margaret maria mark martin mary matt
matthew may mcconnell merkel mexican mexico miami michael michigan mike milan mitch mnuchin modi
monday montreal moodys moscow mumbai musk nancy nasdaq nathan navarro neil nicholas nick nigeria
nordic norway november nyse obama october ohio oliver omaha pacific paris pat patricia patrick
paul pelosi peru peter phil philip philippines poland portugal powell putin qatar rachel ralph
ray raymond reuters richard rick robert roger ron ronald rose russell russia russian ruth ryan
sam samuel sanders sandra sarah saturday saudi scandinavian schumer scotland scott scottish sean
seattle seoul september shanghai singapore soros spain spanish stephen steve steven sunday susan
sweden swiss switzerland sydney taiwan ted terry texas thailand thanksgiving thomas thursday tim
timothy todd tokyo tom tony toronto trump tuesday turkey turkish vancouver venezuela victor
vietnam vincent wales wall walt walter warren washington wayne wednesday william wuhan xi yellen
york zurich
""".split()
)
"""Names of people, places, days and months, and of indices and news sources: always written
with a capital, so the capital says nothing, and "Brazil's" is not Brazil Potash's."""
