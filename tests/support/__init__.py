"""Test-only code loaded into the real worker and web processes (PRESSROOM_EXTRA_KINDS)."""
