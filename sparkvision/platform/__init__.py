"""Platform: deployment settings, the storage layout, the Hadoop filesystem client, Spark plumbing.

The bottom layer: every other part of sparkvision may import it; it imports none of them.
"""
