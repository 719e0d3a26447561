"""What is plugged in: udev events, sound cards, sticks and their identities, fleet health."""
