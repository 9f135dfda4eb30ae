"""The state machine drawn from its own table, as a Mermaid diagram.

`docs/order-lifecycle.md` is this output; a test fails when it is stale, so the
picture can never disagree with the code.
"""

from __future__ import annotations

from order_core.domain.lifecycle import TERMINAL_STATES, TRANSITIONS, OrderState


def mermaid() -> str:
    lines = ["stateDiagram-v2", f"    [*] --> {OrderState.RFQ_SENT.value}"]
    for t in TRANSITIONS:
        label = t.event.value
        if t.only_if_rfq_open is True:
            label += " [RFQ open]"
        elif t.only_if_rfq_open is False:
            label += " [RFQ closed]"
        lines.extend(f"    {source.value} --> {t.dest.value}: {label}" for source in t.sources)
    lines.extend(f"    {state.value} --> [*]" for state in OrderState if state in TERMINAL_STATES)
    return "\n".join(lines) + "\n"


def document() -> str:
    return (
        "# Order lifecycle\n\n"
        "Generated from `order_core/domain/lifecycle.py` by "
        "`python -m order_core.domain.diagram`; do not edit by hand.\n"
        "Any event not drawn here is refused in that state, and nothing changes.\n\n"
        "```mermaid\n" + mermaid() + "```\n"
    )


if __name__ == "__main__":
    print(document(), end="")
