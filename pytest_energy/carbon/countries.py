"""ISO 3166-1 alpha-2 codes for the countries in the bundled Ember table.

Users type ``FR`` as often as ``FRA``; Ember (and so our table) keys countries by
alpha-3, and Electricity Maps names its country zones by alpha-2. The pairs below
are ISO 3166-1 (the alpha-2 and alpha-3 columns of the standard's country table)
for exactly the 209 countries and territories in ``grid-intensity-countries.csv``;
``tests/test_carbon.py`` checks that every table row has one and no pair is unused.
"""

from __future__ import annotations

_PAIRS = """
AE:ARE AF:AFG AG:ATG AL:ALB AM:ARM AO:AGO AR:ARG AS:ASM AT:AUT AU:AUS AW:ABW AZ:AZE
BA:BIH BB:BRB BD:BGD BE:BEL BF:BFA BG:BGR BH:BHR BI:BDI BJ:BEN BN:BRN BO:BOL BR:BRA
BS:BHS BT:BTN BW:BWA BY:BLR BZ:BLZ CA:CAN CD:COD CF:CAF CG:COG CH:CHE CI:CIV CK:COK
CL:CHL CM:CMR CN:CHN CO:COL CR:CRI CU:CUB CV:CPV CY:CYP CZ:CZE DE:DEU DJ:DJI DK:DNK
DM:DMA DO:DOM DZ:DZA EC:ECU EE:EST EG:EGY ER:ERI ES:ESP ET:ETH FI:FIN FJ:FJI FK:FLK
FO:FRO FR:FRA GA:GAB GB:GBR GD:GRD GE:GEO GF:GUF GH:GHA GL:GRL GM:GMB GN:GIN GP:GLP
GQ:GNQ GR:GRC GT:GTM GU:GUM GW:GNB GY:GUY HK:HKG HN:HND HR:HRV HT:HTI HU:HUN ID:IDN
IE:IRL IL:ISR IN:IND IQ:IRQ IR:IRN IS:ISL IT:ITA JM:JAM JO:JOR JP:JPN KE:KEN KG:KGZ
KH:KHM KI:KIR KM:COM KN:KNA KP:PRK KR:KOR KW:KWT KY:CYM KZ:KAZ LA:LAO LB:LBN LC:LCA
LK:LKA LR:LBR LS:LSO LT:LTU LU:LUX LV:LVA LY:LBY MA:MAR MD:MDA ME:MNE MG:MDG MK:MKD
ML:MLI MM:MMR MN:MNG MO:MAC MQ:MTQ MR:MRT MS:MSR MT:MLT MU:MUS MV:MDV MW:MWI MX:MEX
MY:MYS MZ:MOZ NA:NAM NC:NCL NE:NER NG:NGA NI:NIC NL:NLD NO:NOR NP:NPL NR:NRU NZ:NZL
OM:OMN PA:PAN PE:PER PF:PYF PG:PNG PH:PHL PK:PAK PL:POL PM:SPM PR:PRI PS:PSE PT:PRT
PY:PRY QA:QAT RE:REU RO:ROU RS:SRB RU:RUS RW:RWA SA:SAU SB:SLB SC:SYC SD:SDN SE:SWE
SG:SGP SI:SVN SK:SVK SL:SLE SN:SEN SO:SOM SR:SUR SS:SSD ST:STP SV:SLV SY:SYR SZ:SWZ
TC:TCA TD:TCD TG:TGO TH:THA TJ:TJK TM:TKM TN:TUN TO:TON TR:TUR TT:TTO TW:TWN TZ:TZA
UA:UKR UG:UGA US:USA UY:URY UZ:UZB VC:VCT VE:VEN VG:VGB VI:VIR VN:VNM VU:VUT WS:WSM
YE:YEM ZA:ZAF ZM:ZMB ZW:ZWE
XK:XKX
"""
# XK/XKX (Kosovo) are user-assigned codes, not official ISO 3166-1: Ember publishes
# XKX, and XK is the matching alpha-2 code in common use.

#: alpha-2 -> alpha-3, upper case.
ALPHA2_TO_ALPHA3: dict[str, str] = dict(pair.split(":") for pair in _PAIRS.split())

#: Codes people use that ISO 3166-1 "exceptionally reserves" for a country
#: (UK for the United Kingdom, whose alpha-2 code is GB).
ALIASES: dict[str, str] = {"UK": "GBR"}

#: alpha-3 -> alpha-2, for mapping a table row to an Electricity Maps zone.
ALPHA3_TO_ALPHA2: dict[str, str] = {a3: a2 for a2, a3 in ALPHA2_TO_ALPHA3.items()}
