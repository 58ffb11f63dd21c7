"""Tests of `toolbridge.formats`."""
