"""Reports: JSON objects, rich tables, plan files and engine launch commands."""
