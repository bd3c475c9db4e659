"""Customer value models: BG/NBD + Gamma-Gamma CLV, fitted by the dbt Python models."""
