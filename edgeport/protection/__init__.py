"""Edge protection: cheap checks on raw traffic before it costs a processor call.

:mod:`.acl` matches source addresses against CIDR lists, :mod:`.flood`
limits requests per source and bans, :mod:`.scanners` spots known SIP
scanners in raw header bytes, :mod:`.connections` caps stream connections per
source and tracks their deadlines; :mod:`.guard` puts them behind one facade,
:class:`EdgeGuard`, that the transport layer calls.
"""

from edgeport.protection.guard import ConnectionTicket, EdgeGuard, Verdict

__all__ = ["ConnectionTicket", "EdgeGuard", "Verdict"]
