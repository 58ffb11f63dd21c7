"""Tests of `toolbridge.local`."""
