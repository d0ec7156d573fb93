"""The core of a request's life: :class:`Exchange` and what it works with (:class:`Core`).

Layers, lowest first: the values an exchange reads (:mod:`.shape`, :mod:`.events`,
:mod:`.continuation`), the gateway-wide state (:mod:`.admission`, :mod:`.models`,
:mod:`.report`, :mod:`.streams`, gathered in :mod:`.core`), continuing a cut stream
(:mod:`.resume`), one attempt per shape (:mod:`.attempts`), the chunk stream
(:mod:`.delivery`) and the exchange itself (:mod:`.exchange`).
"""

from lkn.exchange.core import Core
from lkn.exchange.exchange import Exchange
from lkn.exchange.shape import Shape

__all__ = ["Core", "Exchange", "Shape"]
