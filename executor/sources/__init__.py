"""Signal sources: async iterators of raw lines (JSONL file, stdin, the demo strategy)."""
