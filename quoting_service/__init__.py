"""The market makers' side: the quoting runtime that prices the RFQs addressed to a
maker with a plug-in strategy, the gateway through which makers' own bots quote
over a WebSocket, and the desk both go through to store quotes in the shared quote
book, answer last look, and stop a maker (protection, kill switch)."""
