"""Operations: health checks, the monitor pass, alert channels and the alert book."""
