"""Alpaca: one authenticated HTTP session shared by market data, news and the trading API."""
