"""A read-only MCP server over the warehouse, for LLM agents (`tapeflow mcp serve`)."""
