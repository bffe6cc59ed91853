"""The Outpost simulator: a closed-loop virtual site with robots, people and cameras."""
