"""Face stage: landmarks, tracking, upright crops and the facial-expression model."""
