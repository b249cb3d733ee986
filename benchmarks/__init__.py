"""The performance budget of SPEC section 11, measured (never asserted in the test suite)."""
