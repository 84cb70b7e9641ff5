"""The boundary's batch loop: fail closed, nothing lost (the Faust side is in agents/)."""
