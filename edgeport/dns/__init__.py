"""RFC 3263 resolution of next hops named in DNS (NAPTR, SRV, A/AAAA), cached, with failover.

:mod:`.resolver` builds the ordered target list from records (sans-IO),
:mod:`.cache` keeps answers for their TTL and remembers failed targets,
:mod:`.lookup` runs the queries on trio (dnspython).
"""

from edgeport.dns.lookup import DnsResolver, UnresolvableHost
from edgeport.dns.resolver import MAX_TARGETS, Target

__all__ = ["MAX_TARGETS", "DnsResolver", "Target", "UnresolvableHost"]
