"""Domain services: the operations both the API and the workers call.

Each takes a :class:`shared.uow.UnitOfWork` (and a publisher where it enqueues work)
and commits through it, once, at the end.
"""
