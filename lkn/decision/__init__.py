"""Homeostatic decisions: how much care each request gets (FLUIDO or ANALITICO)."""

from lkn.decision.decider import Decider

__all__ = ["Decider"]
