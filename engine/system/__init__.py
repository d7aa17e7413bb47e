"""What this machine offers detcli: libraries, devices, precisions, disk."""
