"""Reading exports into the raw schema: the landing protocol, vendor mappings, encodings, value
parsers, row rules and the quarantine report."""
