"""What every long-running process shares: health and metrics port, leader election."""
