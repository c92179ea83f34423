"""Pure placement: feasibility -> rank -> select. No asyncio, no store, no I/O."""
