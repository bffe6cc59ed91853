"""The append-only, hash-chained audit log: `AuditLog`, `Entry`, and the request middleware."""

from hub.audit.chain import SYSTEM, Actor, Entry
from hub.audit.log import AuditLog, Verdict

__all__ = ["SYSTEM", "Actor", "AuditLog", "Entry", "Verdict"]
