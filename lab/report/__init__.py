"""Headless views of Snapshots: tables for the terminal."""
