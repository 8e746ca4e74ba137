"""One deadline per probe over resolve, connect, TLS and the conversation; one conversation per protocol."""
