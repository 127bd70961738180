"""promenade-hostsd: the only code that writes /etc/hosts. Standard library only."""
