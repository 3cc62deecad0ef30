"""HEP capture: the encoder and the sender."""
