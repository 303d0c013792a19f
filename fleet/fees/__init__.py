"""Fee tables: the table file, basket impact, targets, publishing."""
