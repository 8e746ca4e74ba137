"""Sans-io parsers of what servers send: bytes in, values or a declared error out."""
