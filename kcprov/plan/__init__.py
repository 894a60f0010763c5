"""Planning: a pure diff of desired against live state, its safety checks and renderings."""

from kcprov.plan.changes import Change, FieldDiff, Plan, UnsafePlan
from kcprov.plan.diff import compute_plan

__all__ = ["Change", "FieldDiff", "Plan", "UnsafePlan", "compute_plan"]
