"""Search machinery shared by the five algorithms: supernets, relaxations, evolution, resume."""
