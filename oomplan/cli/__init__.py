"""Thin typer commands: flags -> specs -> library -> renderer. No logic here."""
