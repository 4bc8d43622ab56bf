"""Outgoing webhook delivery: the pure pieces (target vetting, signing, one HTTP attempt, retry schedule).

Nothing in this package touches the database or the broker, so each piece can be tested on its own and
reused by whichever worker ends up scheduling deliveries.
"""
