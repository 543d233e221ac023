"""Answer-key corrections: the organizer's file checked, a new answer-key version and its public trail."""
