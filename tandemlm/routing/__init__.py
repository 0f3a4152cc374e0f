"""Router training and offline evaluation (tables of SLM/LLM outcomes -> router parameters, APGR curves)."""
