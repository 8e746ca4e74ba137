"""The control channel of a running watch: the request vocabulary, the fast standard-library commands and client, and the AMP server."""
