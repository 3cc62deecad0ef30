"""edgeport: a SIP edge proxy that speaks to Routr processors over gRPC."""

__version__ = "0.1.0"
