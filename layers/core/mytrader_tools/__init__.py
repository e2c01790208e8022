"""MyTrader tools: embedded AWS, replay and demo, CLI, bench and report. Imports the library `mytrader`;
the library never imports these, and the Lambda layer ships `mytrader` alone."""
