"""One market maker's quoting bot: prices the RFQs addressed to it with a plug-in
strategy, stores each quote in the shared quote book and answers last look."""
