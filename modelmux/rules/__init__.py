"""The routing rule language: tokenize, parse and compile ``[[routing.rule]]`` conditions into
predicates over a request's facts. Pure; config checks rules with it, routing evaluates them."""
