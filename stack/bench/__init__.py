"""`otc bench`: the end-to-end figures (`platform.py`) and one bench per service:
credit (risk_limits), quoting, WebSocket fan-out (rfq_service) and settlement."""
