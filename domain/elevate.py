"""ELEVATE, the seeds' nine-step journey (hook, gift, identify, engage, sell, nurture, upsell,
understand, share), as a workflow definition.

The hook's free AI business analysis is followed by a 24-hour wait for the person to review it;
identify is the $100 payment gate (seven days to pay); the last six steps each wait for the
person's own action (a signal named after the step). Steps retry as the seeds say: 3 attempts,
1 s initial backoff.
"""

from __future__ import annotations

from domain.workflows import Retry, Step, WorkflowDefinition

REVIEW_WAIT_S = 24 * 60 * 60
PAYMENT_WAIT_S = 7 * 24 * 60 * 60
GATE_CENTS = 100_00

_USER_STEPS = (
    ("engage", "Engage: interactive workshops and tools"),
    ("sell", "Sell: core product or service delivery"),
    ("nurture", "Nurture: ongoing support and resources"),
    ("upsell", "Upsell: premium features and services"),
    ("understand", "Understand: analytics and optimisation"),
    ("share", "Share: referral rewards and the viral loop"),
)

ELEVATE = WorkflowDefinition(
    name="elevate",
    version=1,
    description="The ELEVATE journey: nine steps from a free AI analysis to referrals.",
    retry=Retry(max_attempts=3, initial_backoff_ms=1000),
    steps=(
        Step("hook", "action", {"action": "elevate.analyse"}, "Hook: a free AI business analysis"),
        Step("review", "wait", {"seconds": REVIEW_WAIT_S}, "24 hours to review the analysis",
             milestone=False),
        Step("gift", "action", {"action": "elevate.insights_report"}, "Gift: the insights report"),
        Step("identify", "payment", {"amount_cents": GATE_CENTS, "currency": "usd",
                                     "timeout_s": PAYMENT_WAIT_S},
             "Identify: the $100 payment gate"),
        *(Step(name, "signal", {"name": name}, title) for name, title in _USER_STEPS),
    ),
)
