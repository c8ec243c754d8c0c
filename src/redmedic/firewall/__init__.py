"""The firewall room: is a port open in a host's own firewall, and how to open it.

What it owns: the rule model (`rules`: first matching rule decides), the `Assessment` a
backend concludes with and the `Opening`s that would let the closed clients in
(`assessment`), one module per backend — `ufw`, `firewalld`, `iptables`, `nft` — each with
its parser, its judgement and the commands that open the port (restricted to a source where
one is given), and the one round trip that reads the host and picks the backend that
decides (`gather`).

Everything here is pure: text in, assessment out. It may import `model` (Finding),
`connection.scripts` (the section marker) and `errors`; never `steps` — the `firewall` step
type and `redis_facts` import from here.
"""
