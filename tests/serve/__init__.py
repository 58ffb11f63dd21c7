"""Tests of `toolbridge.serve`."""
