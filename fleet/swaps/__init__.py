"""Terminal swaps: plan, swap, provision, day sheets."""
