"""Connectors to the vendor ledgers and payroll systems (Netvisor, Procountor, Visma.net,
24SevenOffice, Nmbrs): one shared HTTP/OAuth core and one module per vendor."""
