"""Sans-io parsers of what servers and clients send: bytes in, values or a declared error out."""
