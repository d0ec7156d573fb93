"""Care: what an ANALITICO request can get, and how it gets it.

The part that describes: intervention specs (:mod:`.specs`) and the measured policy files
(:mod:`.policy`, shipped ones in ``policies/``). The part that applies: the verification
instruction (:mod:`.instruction`), each intervention's change to an engine body
(:mod:`.bodies`), the bodies that restart a held generation with care (:mod:`.restart`),
care a client names itself (:mod:`.asked`), and the chooser that picks a request's care
from its decision (:mod:`.chooser`).
"""
