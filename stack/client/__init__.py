"""The trader client: REST and a resumed WebSocket, as a trader drives the platform."""

from stack.client.model import ApiError, RfqTrack
from stack.client.trader import TraderClient

__all__ = ["ApiError", "RfqTrack", "TraderClient"]
