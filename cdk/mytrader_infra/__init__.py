"""CDK constructs of MyTrader: one per capability; the stack only assembles them."""
