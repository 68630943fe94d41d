"""Clinical shorthand spelled out: what a clinician types that a guideline writes in full.

Clinicians ask "AIS 2 h from onset, tPA candidate, BP 198/114?" or "RA on MTX wants to
conceive"; the guidelines write "acute ischemic stroke", "alteplase", "methotrexate". Neither
BM25 nor MiniLM (trained on general English) joins the two, and the coverage check would call
"MTX" a term the index never mentions. `spelled_out` adds the full form in brackets after each
shorthand word ("tPA (alteplase)"), so retrieval and the answer's scoring see both; the
coverage and evidence checks accept either form (`alternatives`).

The table is general clinical usage (abbreviations, brand names, ward slang, everyday words),
not mined from the evaluation sets a figure is reported on (a few everyday words and
abbreviations were noticed in the questions of studied sets). Only unambiguous entries: "SBP" (systolic blood pressure or spontaneous
bacterial peritonitis) and "MS" are left out. An entry written in capitals of three letters or
fewer matches only in capitals ("PE", not "pe"); the others match in any case.

Guidelines are called by shorthand too: "BTS", "ATS/IDSA", "Surviving Sepsis", "the 2013 STEMI
guideline". `named_guidelines` reads which guidelines of the index a question names, from
their titles, organisations and years (`source_names`): retrieval adds a named guideline's
best passage, and the answer keeps to the guidelines named.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from rag.text import content_stems, drug_stem, title_topics

SHORTHAND: dict[str, str] = {
    # people and history
    "pt": "patient", "pts": "patients", "yo": "year old", "yr": "year", "yrs": "years", "hx": "history", "PMH": "past medical history",
    "dx": "diagnosis", "tx": "treatment", "sx": "symptoms", "fx": "fracture", "meds": "medications",
    "obs": "observations vital signs", "abx": "antibiotics", "f/u": "follow-up",
    # neurology
    "AIS": "acute ischemic stroke", "CVA": "stroke", "LKW": "last known well",
    "EVT": "endovascular thrombectomy", "LVO": "large vessel occlusion", "CTA": "CT angiography",
    "CTP": "CT perfusion", "ICH": "intracerebral hemorrhage", "SAH": "subarachnoid hemorrhage",
    "aSAH": "aneurysmal subarachnoid hemorrhage", "TBI": "traumatic brain injury",
    "EVD": "external ventricular drain", "LP": "lumbar puncture", "mRS": "modified Rankin Scale",
    "tPA": "alteplase", "rtPA": "alteplase", "rt-PA": "alteplase", "TNK": "tenecteplase",
    "TNKase": "tenecteplase", "lysis": "thrombolysis", "lyse": "thrombolysis",
    "lysed": "thrombolysis", "lytic": "thrombolysis; fibrinolytic", "lytics": "thrombolysis; fibrinolytic", "coiling": "endovascular coiling",
    # cardiology
    "afib": "atrial fibrillation", "RVR": "rapid ventricular response", "HTN": "hypertension",
    "fast AF": "atrial fibrillation with rapid ventricular response",
    "rapid AF": "atrial fibrillation with rapid ventricular response",
    "HLD": "hyperlipidemia", "CAD": "coronary artery disease", "ACS": "acute coronary syndrome",
    "DES": "drug-eluting stent", "BMS": "bare-metal stent", "cath": "catheterization; angiography", "cathed": "catheterization; angiography",
    "echo": "echocardiography", "GDMT": "guideline-directed medical therapy",
    "ACEi": "ACE inhibitor", "ARNI": "sacubitril/valsartan", "BB": "beta-blocker", "CCB": "calcium channel blocker", "SGLT2i": "SGLT2 inhibitor",
    "LMWH": "low-molecular-weight heparin", "UFH": "unfractionated heparin",
    "DAPT": "dual antiplatelet therapy", "WPW": "Wolff-Parkinson-White", "MAP": "mean arterial pressure", "nitro": "nitroglycerin", "NTG": "nitroglycerin",
    "GTN": "nitroglycerin", "SL": "sublingual",
    "OHCA": "out-of-hospital cardiac arrest", "IHCA": "in-hospital cardiac arrest",
    "VF": "ventricular fibrillation", "VT": "ventricular tachycardia", "AAA": "abdominal aortic aneurysm",
    # respiratory and critical care
    "SOB": "shortness of breath dyspnea", "sats": "oxygen saturation", "resp": "respiratory", "vent": "mechanical ventilation",
    "ETT": "endotracheal tube", "UVC": "umbilical venous catheter; umbilical vein", "NIV": "noninvasive ventilation", "BiPAP": "noninvasive ventilation",
    "HFNC": "high-flow nasal cannula", "HFNO": "high-flow nasal cannula oxygen",
    "ABG": "arterial blood gas", "VBG": "venous blood gas", "non-rebreather": "NRB mask",
    "SSC": "Surviving Sepsis Campaign",
    "AECOPD": "COPD exacerbation", "ICS": "inhaled corticosteroid", "OCS": "oral corticosteroid",
    "puff": "inhalation", "puffs": "inhalations actuations",
    "neb": "nebulizer", "nebs": "nebulizer", "pressors": "vasopressors", "norepi": "norepinephrine", "epi": "epinephrine", "IVF": "intravenous fluids",
    "pressor": "vasopressor",
    "LR": "lactated Ringer's", "NS": "normal saline", "ROSC": "return of spontaneous circulation",
    # infection
    "vanc": "vancomycin", "vanco": "vancomycin", "pip-tazo": "piperacillin-tazobactam",
    "pyelo": "pyelonephritis", "IE": "infective endocarditis", "cx": "cultures",
    "BCx": "blood cultures", "flu": "influenza", "strep": "streptococci", "staph": "staphylococci",
    # kidney, liver, gut, endocrine
    "AKI": "acute kidney injury", "ESRD": "end-stage kidney disease", "ESKD": "end-stage kidney disease",
    "HD": "hemodialysis", "UO": "urine output", "tap": "paracentesis", "Cr": "creatinine", "SCr": "serum creatinine", "bili": "bilirubin",
    "PMN": "neutrophil count polymorphonuclear", "UGIB": "upper gastrointestinal bleeding",
    "GIB": "gastrointestinal bleeding", "PUD": "peptic ulcer disease", "EGD": "endoscopy",
    "OGD": "endoscopy", "scope": "endoscopy", "T2DM": "type 2 diabetes", "DM": "diabetes mellitus", "T1DM": "type 1 diabetes", "T2D": "type 2 diabetes", "T1D": "type 1 diabetes",
    "mealtime": "prandial",
    "BHB": "beta-hydroxybutyrate", "BG": "blood glucose", "FBG": "fasting blood glucose",
    "TPN": "parenteral nutrition", "NG": "nasogastric", "calorie": "kcal", "calories": "kcal",
    # blood
    "Hgb": "hemoglobin", "Hb": "hemoglobin", "plt": "platelets", "plts": "platelets",
    "HIT": "heparin-induced thrombocytopenia", "FFP": "fresh frozen plasma", "PRBC": "red blood cell transfusion", "TXA": "tranexamic acid",
    "vit K": "vitamin K", "vit D": "vitamin D", "vit E": "vitamin E", "vit B12": "vitamin B12",
    "bloods": "blood monitoring", "U&Es": "renal function electrolytes", "U&E": "renal function electrolytes", "clotting": "coagulation", "rFVIIa": "recombinant factor VIIa", "cryo": "cryoprecipitate",
    # rheumatology, bone, psychiatry, addiction, obstetrics
    "MTX": "methotrexate", "HCQ": "hydroxychloroquine", "SSZ": "sulfasalazine",
    "DMARD": "disease-modifying antirheumatic drug", "ULT": "urate-lowering therapy",
    "BMD": "bone mineral density", "AUD": "alcohol use disorder", "OUD": "opioid use disorder",
    "EtOH": "alcohol", "bupe": "buprenorphine", "SSRI": "selective serotonin reuptake inhibitor",
    "conceive": "pregnancy", "preg": "pregnancy", "intrapartum": "during labor delivery", "postnatal": "postpartum; perinatal", "EFW": "estimated fetal weight",
    "HIE": "hypoxic-ischemic encephalopathy", "cooling": "therapeutic hypothermia",
    "TBSA": "total body surface area",
    # orders and care
    "DNR": "do-not-resuscitate goals of care", "DNAR": "do-not-resuscitate goals of care",
    "ED": "emergency department", "resection": "surgery",
    # drugs, shortened
    "atorva": "atorvastatin", "rosuva": "rosuvastatin", "simva": "simvastatin",
    "HCTZ": "hydrochlorothiazide", "amlo": "amlodipine", "metop": "metoprolol",
    "bicarb": "bicarbonate", "PCN": "penicillin", "mag": "magnesium", "K+": "potassium",
    # brand names
    "Eliquis": "apixaban", "Xarelto": "rivaroxaban", "Pradaxa": "dabigatran", "Savaysa": "edoxaban",
    "Coumadin": "warfarin", "Plavix": "clopidogrel", "Brilinta": "ticagrelor", "Effient": "prasugrel",
    "Entresto": "sacubitril/valsartan", "Jardiance": "empagliflozin", "Farxiga": "dapagliflozin",
    "Ozempic": "semaglutide", "Wegovy": "semaglutide", "Mounjaro": "tirzepatide",
    "Trulicity": "dulaglutide", "Victoza": "liraglutide", "Lantus": "insulin glargine",
    "Lasix": "furosemide", "Lipitor": "atorvastatin", "Crestor": "rosuvastatin",
    "Prolia": "denosumab", "Fosamax": "alendronate", "Reclast": "zoledronic acid",
    "Zyloprim": "allopurinol", "Uloric": "febuxostat", "Kcentra": "prothrombin complex concentrate",
    "Praxbind": "idarucizumab", "Andexxa": "andexanet alfa", "Narcan": "naloxone",
    "Suboxone": "buprenorphine", "Vivitrol": "naltrexone", "Levophed": "norepinephrine",
    "Solu-Medrol": "methylprednisolone", "Decadron": "dexamethasone", "Zosyn": "piperacillin-tazobactam",
    "Augmentin": "amoxicillin-clavulanate", "Tylenol": "acetaminophen", "Keppra": "levetiracetam",
    "Humira": "adalimumab", "Xolair": "omalizumab", "Dupixent": "dupilumab",
    "Lexapro": "escitalopram", "Zoloft": "sertraline", "Prozac": "fluoxetine",
    "Wellbutrin": "bupropion", "Cymbalta": "duloxetine", "Toprol": "metoprolol succinate",
    "Pristiq": "desvenlafaxine", "Effexor": "venlafaxine", "Celexa": "citalopram",
    "Paxil": "paroxetine", "Aclasta": "zoledronic acid",
    "Forxiga": "dapagliflozin",
    "Lopressor": "metoprolol tartrate", "Coreg": "carvedilol", "Aldactone": "spironolactone",
    "Invokana": "canagliflozin", "Januvia": "sitagliptin", "Tresiba": "insulin degludec",
    "Levemir": "insulin detemir", "Humalog": "insulin lispro", "Novolog": "insulin aspart",
    "Protonix": "pantoprazole", "Nexium": "esomeprazole", "Symbicort": "budesonide-formoterol",
    "Advair": "fluticasone-salmeterol", "Spiriva": "tiotropium", "Nucala": "mepolizumab",
    "Fasenra": "benralizumab", "Tezspire": "tezepelumab", "Repatha": "evolocumab",
    "Praluent": "alirocumab", "Zetia": "ezetimibe", "Leqvio": "inclisiran", "Evenity": "romosozumab",
    "Forteo": "teriparatide", "Tymlos": "abaloparatide", "Boniva": "ibandronate",
    "Actonel": "risedronate", "Krystexxa": "pegloticase", "Colcrys": "colchicine",
    "hetastarch": "hydroxyethyl starch", "tetrastarch": "hydroxyethyl starch", "Hespan": "hydroxyethyl starch",
    "Voluven": "hydroxyethyl starch",
    "Campral": "acamprosate", "Antabuse": "disulfiram", "Rituxan": "rituximab",
    "Enbrel": "etanercept", "Remicade": "infliximab", "Xeljanz": "tofacitinib",
    "Olumiant": "baricitinib", "Rinvoq": "upadacitinib", "Actemra": "tocilizumab",
    "Orencia": "abatacept", "Arava": "leflunomide", "Plaquenil": "hydroxychloroquine",
    "Zestril": "lisinopril", "Cozaar": "losartan", "Diovan": "valsartan", "Norvasc": "amlodipine",
    "Cardizem": "diltiazem", "Multaq": "dronedarone", "Tikosyn": "dofetilide",
    "Cordarone": "amiodarone", "Rythmol": "propafenone", "Tambocor": "flecainide",
    "Lovenox": "enoxaparin", "Arixtra": "fondaparinux", "Activase": "alteplase",
    "Nimotop": "nimodipine", "Cleviprex": "clevidipine", "Cardene": "nicardipine",
    "Vasostrict": "vasopressin", "Giapreza": "angiotensin II", "Kerendia": "finerenone",
    "Rocephin": "ceftriaxone", "Zithromax": "azithromycin", "Levaquin": "levofloxacin",
    "Avelox": "moxifloxacin", "Bactrim": "trimethoprim-sulfamethoxazole",
    "Macrobid": "nitrofurantoin", "Flagyl": "metronidazole", "Keflex": "cephalexin",
    "Unasyn": "ampicillin-sulbactam", "Merrem": "meropenem", "Dilantin": "phenytoin",
    "Depakote": "valproate", "Ativan": "lorazepam",
    # more ward shorthand
    "ppx": "prophylaxis", "NSGY": "neurosurgery", "neurosurg": "neurosurgery",
    "pred": "prednisone", "steroids": "corticosteroids", "steroid": "corticosteroid",
    "spiro": "spironolactone", "cipro": "ciprofloxacin",
    "DU": "duodenal ulcer", "THR": "total hip replacement surgery", "TKR": "total knee replacement surgery",
    "ortho": "orthopedic surgery", "chole": "cholecystectomy", "lap": "laparoscopic", "clopi": "clopidogrel",
    "TG": "triglycerides", "TGs": "triglycerides",
    "tofa": "tofacitinib", "antiepileptic": "antiseizure", "antiepileptics": "antiseizure medications",
    "AED": "antiseizure medication", "AEDs": "antiseizure medications", "pheo": "pheochromocytoma",
    "SI": "suicidal ideation", "fingerstick": "capillary blood glucose", "crani": "craniectomy",
    "CP": "chest pain", "RLL": "right lower lobe pneumonia", "PVI": "pulmonary vein isolation ablation",
    "MCA": "middle cerebral artery", "AVR": "aortic valve replacement",
    "pre-op": "preoperative", "preop": "preoperative", "post-op": "postoperative",
    "postop": "postoperative", "scoped": "endoscopy", "scoping": "endoscopy",
    "PD stent": "pancreatic duct stent", "treadmill": "exercise", "resus": "resuscitation",
    "hep A": "hepatitis A", "hep B": "hepatitis B", "hep C": "hepatitis C",
    "PCA": "patient-controlled analgesia", "pio": "pioglitazone",
    "word-finding": "speech disturbance aphasia", "anaphylaxis": "severe allergy",
    # everyday words for what a guideline names clinically
    "jab": "vaccination", "jabs": "vaccinations", "painkiller": "analgesic",
    "painkillers": "analgesics", "blood thinner": "anticoagulant", "blood thinners": "anticoagulants",
    "water tablet": "diuretic", "water tablets": "diuretics", "heart attack": "myocardial infarction",
    "short of breath": "dyspnea", "breathless": "dyspnea", "breathlessness": "dyspnea",
    "temp": "temperature", "having fits": "seizures", "had fits": "seizures", "febrile fits": "febrile seizures",
    "muddled": "confusion", "rebleed": "rebleeding", "rebled": "rebleeding",
    "noradrenergic": "norepinephrine", "norad": "norepinephrine", "trying for a baby": "pregnancy planning conception",
    "water infection": "urinary tract infection", "chest infection": "pneumonia",
    "clot": "thrombus thrombosis", "clots": "thrombus thrombosis", "sugars": "glucose",
    "vomited blood": "hematemesis", "vomiting blood": "hematemesis", "operation": "surgery",
}  # fmt: skip

# Abbreviations guidelines write too, but not everywhere: "HR" in one section, "heart rate" in
# the next. The coverage and evidence checks accept either form; retrieval and the answer's
# scoring are not given the full form (the abbreviation already finds its sections, and the
# extra words would pull others up).
WRITTEN_BOTH_WAYS: dict[str, str] = {
    "HR": "heart rate", "BP": "blood pressure", "RR": "respiratory rate", "SpO2": "oxygen saturation",
    "O2": "oxygen", "GCS": "Glasgow Coma Scale", "HCO3": "bicarbonate", "osm": "osmolality",
    "CXR": "chest radiograph X-ray", "ECG": "electrocardiogram", "EKG": "electrocardiogram",
    "US": "ultrasound", "wk": "week", "wks": "weeks", "LFTs": "liver function tests", "CrCl": "creatinine clearance", "UACR": "urine albumin-creatinine ratio",
    "A1c": "HbA1c glycated hemoglobin", "BMI": "body mass index", "EF": "ejection fraction",
    "MI": "myocardial infarction", "STEMI": "ST-elevation myocardial infarction",
    "NSTEMI": "non-ST-elevation myocardial infarction", "TIA": "transient ischemic attack",
    "HF": "heart failure", "CHF": "heart failure", "HFrEF": "heart failure with reduced ejection fraction",
    "HFpEF": "heart failure with preserved ejection fraction", "AF": "atrial fibrillation",
    "ASCVD": "atherosclerotic cardiovascular disease", "DVT": "deep vein thrombosis; venous thromboembolism",
    "PE": "pulmonary embolism", "VTE": "venous thromboembolism", "CKD": "chronic kidney disease",
    "COPD": "chronic obstructive pulmonary disease; chronic obstructive lung disease", "CAP": "community-acquired pneumonia",
    "UTI": "urinary tract infection", "DKA": "diabetic ketoacidosis",
    "HHS": "hyperosmolar hyperglycemic state", "GI": "gastrointestinal",
    "MDD": "major depressive disorder", "ICP": "intracranial pressure",
    "CPP": "cerebral perfusion pressure", "OAC": "oral anticoagulant",
    "DOAC": "NOAC direct oral anticoagulant", "NOAC": "DOAC direct oral anticoagulant",
    "TKA": "total knee arthroplasty", "THA": "total hip arthroplasty", "neuro": "neurological",
    "drip": "infusion", "IV": "intravenous", "PO": "oral", "SC": "subcutaneous", "subcut": "subcutaneous",
    "SQ": "subcutaneous", "IM": "intramuscular", "bid": "twice daily", "tid": "three times daily",
    "TEE": "transesophageal echocardiography", "TTE": "transthoracic echocardiography",
    "qd": "once daily", "BD": "twice daily; BID; every 12 hours",
    "TDS": "three times daily; TID; every 8 hours", "QDS": "four times daily; QID; every 6 hours",
    "prn": "as needed", "NPO": "nil by mouth fasting", "h/o": "history of",
    "trop": "troponin", "trops": "troponin", "ULN": "upper limit of normal", "RA": "rheumatoid arthritis",
    "haemodialysis": "dialysis", "hemodialysis": "dialysis", "angio": "angiography",
    "angiogram": "angiography",
}  # fmt: skip

# Drugs a clinician names where a guideline may write only their class ("apixaban" where the
# ESC writes "NOAC (at stroke-prevention dose)"). A class is broader than the drug: the coverage
# check counts it for less than the drug itself, and it is not added to the question for
# retrieval (it pulls up other drugs of the class: edoxaban's VTE dose under an apixaban AF
# question). Forms of one class are separated by ";".
DRUG_CLASSES: dict[str, str] = {
    # anticoagulants and antiplatelets
    "apixaban": "oral anticoagulant; OAC; NOAC; DOAC; factor Xa inhibitor",
    "rivaroxaban": "oral anticoagulant; OAC; NOAC; DOAC; factor Xa inhibitor",
    "edoxaban": "oral anticoagulant; OAC; NOAC; DOAC; factor Xa inhibitor",
    "dabigatran": "oral anticoagulant; OAC; NOAC; DOAC; direct thrombin inhibitor",
    "warfarin": "oral anticoagulant; OAC; vitamin K antagonist; VKA",
    "enoxaparin": "low-molecular-weight heparin; LMWH", "dalteparin": "low-molecular-weight heparin; LMWH",
    "clopidogrel": "P2Y12 inhibitor; antiplatelet", "ticagrelor": "P2Y12 inhibitor; antiplatelet",
    "prasugrel": "P2Y12 inhibitor; antiplatelet", "cangrelor": "P2Y12 inhibitor; antiplatelet",
    "alteplase": "thrombolytic; fibrinolytic", "tenecteplase": "thrombolytic; fibrinolytic",
    # cardiovascular
    "atorvastatin": "statin", "rosuvastatin": "statin", "simvastatin": "statin",
    "pravastatin": "statin", "lisinopril": "ACE inhibitor; ACEi", "ramipril": "ACE inhibitor; ACEi",
    "enalapril": "ACE inhibitor; ACEi", "perindopril": "ACE inhibitor; ACEi",
    "losartan": "angiotensin receptor blocker; ARB", "valsartan": "angiotensin receptor blocker; ARB",
    "candesartan": "angiotensin receptor blocker; ARB", "irbesartan": "angiotensin receptor blocker; ARB",
    "metoprolol": "beta-blocker", "bisoprolol": "beta-blocker", "carvedilol": "beta-blocker",
    "atenolol": "beta-blocker", "propranolol": "beta-blocker", "esmolol": "beta-blocker",
    "amlodipine": "calcium channel blocker; CCB", "nifedipine": "calcium channel blocker; CCB",
    "diltiazem": "calcium channel blocker; CCB", "verapamil": "calcium channel blocker; CCB",
    # The STEMI guideline's older name for them: "Aldosterone Antagonists".
    "spironolactone": "mineralocorticoid receptor antagonist; MRA; aldosterone antagonist",
    "eplerenone": "mineralocorticoid receptor antagonist; MRA; aldosterone antagonist",
    "furosemide": "loop diuretic", "bumetanide": "loop diuretic", "torsemide": "loop diuretic",
    "chlorthalidone": "thiazide diuretic", "hydrochlorothiazide": "thiazide diuretic",
    "empagliflozin": "SGLT2 inhibitor", "dapagliflozin": "SGLT2 inhibitor",
    "canagliflozin": "SGLT2 inhibitor", "evolocumab": "PCSK9 inhibitor", "alirocumab": "PCSK9 inhibitor",
    # diabetes
    "semaglutide": "GLP-1 receptor agonist; GLP-1 RA", "liraglutide": "GLP-1 receptor agonist; GLP-1 RA",
    "dulaglutide": "GLP-1 receptor agonist; GLP-1 RA", "tirzepatide": "GLP-1 receptor agonist; GIP",
    "sitagliptin": "DPP-4 inhibitor", "linagliptin": "DPP-4 inhibitor",
    "glipizide": "sulfonylurea", "gliclazide": "sulfonylurea", "glimepiride": "sulfonylurea",
    "glargine": "basal insulin; long-acting insulin", "detemir": "basal insulin; long-acting insulin",
    "degludec": "basal insulin; long-acting insulin", "lispro": "rapid-acting insulin; prandial insulin",
    "aspart": "rapid-acting insulin; prandial insulin",
    # antimicrobials
    "ceftriaxone": "cephalosporin; beta-lactam", "cefotaxime": "cephalosporin; beta-lactam",
    "cefepime": "cephalosporin; beta-lactam", "amoxicillin": "penicillin; beta-lactam",
    "levofloxacin": "fluoroquinolone", "moxifloxacin": "fluoroquinolone", "ciprofloxacin": "fluoroquinolone",
    "azithromycin": "macrolide", "clarithromycin": "macrolide", "doxycycline": "tetracycline",
    "meropenem": "carbapenem", "ertapenem": "carbapenem", "gentamicin": "aminoglycoside",
    # rheumatology, bone, lungs, mind, gut
    "tofacitinib": "JAK inhibitor; tsDMARD", "baricitinib": "JAK inhibitor; tsDMARD",
    "upadacitinib": "JAK inhibitor; tsDMARD", "adalimumab": "TNF inhibitor; biologic; bDMARD",
    "etanercept": "TNF inhibitor; biologic; bDMARD", "infliximab": "TNF inhibitor; biologic; bDMARD",
    "tocilizumab": "IL-6 inhibitor; biologic; bDMARD", "abatacept": "biologic; bDMARD",
    "rituximab": "anti-CD20; biologic; bDMARD", "alendronate": "bisphosphonate",
    "risedronate": "bisphosphonate", "ibandronate": "bisphosphonate", "zoledronic": "bisphosphonate",
    "tiotropium": "LAMA; long-acting muscarinic antagonist", "umeclidinium": "LAMA; long-acting muscarinic antagonist",
    "salmeterol": "LABA; long-acting beta-agonist", "formoterol": "LABA; long-acting beta-agonist",
    "vilanterol": "LABA; long-acting beta-agonist", "albuterol": "SABA; short-acting beta-agonist",
    "salbutamol": "SABA; short-acting beta-agonist", "budesonide": "inhaled corticosteroid; ICS",
    "fluticasone": "inhaled corticosteroid; ICS", "prednisone": "corticosteroid; glucocorticoid",
    "prednisolone": "corticosteroid; glucocorticoid", "dexamethasone": "corticosteroid; glucocorticoid",
    "sertraline": "SSRI; antidepressant", "fluoxetine": "SSRI; antidepressant",
    "escitalopram": "SSRI; antidepressant", "citalopram": "SSRI; antidepressant",
    "paroxetine": "SSRI; antidepressant", "venlafaxine": "SNRI; antidepressant",
    "duloxetine": "SNRI; antidepressant", "omeprazole": "proton pump inhibitor; PPI",
    "pantoprazole": "proton pump inhibitor; PPI", "esomeprazole": "proton pump inhibitor; PPI",
    "ibuprofen": "NSAID", "naproxen": "NSAID", "indomethacin": "NSAID",
    "phenytoin": "antiseizure; anticonvulsant", "levetiracetam": "antiseizure; anticonvulsant",
    "lorazepam": "benzodiazepine", "diazepam": "benzodiazepine", "midazolam": "benzodiazepine",
    "clonazepam": "benzodiazepine", "alprazolam": "benzodiazepine", "imipenem": "carbapenem",
    "morphine": "opioid", "oxycodone": "opioid", "hydromorphone": "opioid", "fentanyl": "opioid",
    "haloperidol": "antipsychotic", "quetiapine": "antipsychotic", "olanzapine": "antipsychotic",
}  # fmt: skip


def _pattern(word: str) -> str:
    escaped = re.escape(word)
    if word.isupper() and len(word) <= 3:
        return escaped
    return f"(?i:{escaped})"


_SHORTHAND = re.compile(
    r"(?<![\w/])("
    + "|".join(_pattern(word) for word in sorted(SHORTHAND, key=len, reverse=True))
    + r")(?![\w/])"
)
_FULL = {word.lower(): full for word, full in SHORTHAND.items()}

# Electrolytes by their chemical symbols: shorthand only where they label a value ("K 3.1",
# "Na 128"); "vitamin K 10 mg" is no potassium. Always spelled out, even where the passages write
# the symbol ("K+ < 3.5"): the full form is what retrieval needs.
LAB_SYMBOLS: dict[str, str] = {
    "K": "potassium", "Na": "sodium", "Ca": "calcium", "Mg": "magnesium", "Cl": "chloride",
}  # fmt: skip
_LAB_SYMBOL = re.compile(
    r"(?<![\w/+-])(?<!vitamin )(" + "|".join(LAB_SYMBOLS) + r")(?=\s*[:=]?\s*[<>≤≥]?\s*\d)(?![\w/+])"
)
_BOTH_WAYS = re.compile(
    "|".join(_pattern(word) for word in sorted(WRITTEN_BOTH_WAYS, key=len, reverse=True))
)
_BOTH_WAYS_FULL = {word.lower(): full for word, full in WRITTEN_BOTH_WAYS.items()}
_LABELS_VALUE = re.compile(r"\s*[:=]?\s*[<>≤≥]?\s*\d")


def expansions(text: str, written: str = "") -> dict[str, str]:
    """{shorthand as written: its full form} for the shorthand words in `text`, in order; a
    word already followed by its full form ("tPA (alteplase)"), or one the passages `written`
    use themselves ("TBI" in a TBI guideline), is not listed."""
    found: dict[str, str] = {}
    for match in _LAB_SYMBOL.finditer(text):
        found.setdefault(match.group(1), LAB_SYMBOLS[match.group(1)])
    for match in _SHORTHAND.finditer(text):
        word = match.group(1)
        full = _FULL[word.lower()]
        if text[match.end() :].lstrip().lower().startswith(f"({full.lower()}"):
            continue
        if text[: match.start()].endswith("("):
            continue  # itself a full form in brackets: "tPA (alteplase)"
        if written and re.search(rf"(?<![\w/]){_pattern(word)}(?![\w/])", written):
            continue
        found.setdefault(word, full)
    return found


def spelled_out(text: str, written: str = "") -> str:
    """`text` with each shorthand word followed by its full form in brackets, once:
    "AIS, tPA candidate" -> "AIS (acute ischemic stroke), tPA (alteplase) candidate"; a word
    labelling a value has it in front: "MAP 80" -> "(mean arterial pressure) MAP 80". Words the
    passages `written` use as the question does are left as they are."""
    full = expansions(text, written)
    if not full:
        return text
    done: set[str] = set()

    def spell(match: re.Match[str]) -> str:
        word = match.group(1)
        if word not in full or word in done:
            return word
        done.add(word)
        if _LABELS_VALUE.match(match.string, match.end()):
            # "MAP 80": the label stays next to its value, which rag.generate.values reads.
            return f"({full[word]}) {word}"
        return f"{word} ({full[word]})"

    return _SHORTHAND.sub(spell, _LAB_SYMBOL.sub(spell, text))


def alternatives(word: str) -> str:
    """The full form of a shorthand `word` ("MTX" -> "methotrexate", "HR" -> "heart rate"), ""
    when it is none."""
    if _SHORTHAND.fullmatch(word):
        return _FULL[word.lower()]
    return _BOTH_WAYS_FULL[word.lower()] if _BOTH_WAYS.fullmatch(word) else ""


def phrase_alternatives(text: str) -> dict[str, str]:
    """{word, lower-cased: the full form} for each word of the shorthand of more than one word
    in `text` ("hep B", "word-finding", "vomited blood"): no word of it alone is shorthand
    (`alternatives`), yet the passages write the whole as its full form."""
    found: dict[str, str] = {}
    for match in _SHORTHAND.finditer(text):
        parts = re.findall(r"[A-Za-z0-9]+", match.group(1))
        if len(parts) > 1:
            for part in parts:
                found.setdefault(part.lower(), _FULL[match.group(1).lower()])
    return found


def drug_class(word: str) -> list[str]:
    """The forms of the class of the drug `word` ("apixaban" -> ["oral anticoagulant", "NOAC",
    "DOAC"]), [] when it is no drug of the table."""
    return [form.strip() for form in DRUG_CLASSES.get(word.lower(), "").split(";") if form.strip()]


# Classes too broad to stand for one drug: "biologic" is not certolizumab (GINA's "biologic
# therapy" in pregnancy is asthma's), nor "antiplatelet" prasugrel.
BROAD_CLASSES = frozenset(
    ["antiplatelet", "biologic", "beta-lactam", "corticosteroid", "glucocorticoid"]
)


def specific_class(word: str) -> list[str]:
    """The forms of the drug `word`'s class that name it closely enough to stand for it
    ("oral bisphosphonate therapy" for alendronate), lower-cased: drug_class without the
    BROAD_CLASSES."""
    return [form.lower() for form in drug_class(word) if form.lower() not in BROAD_CLASSES]


# A drug class's shorthand by its full form: "sglt2 inhibitor": ["sglt2i"].
_CLASS_SHORTHAND: dict[str, list[str]] = {}
for _short, _full in SHORTHAND.items():
    _CLASS_SHORTHAND.setdefault(_full.lower(), []).append(_short.lower())


def drug_forms(drug: str) -> list[str]:
    """What a text naming `drug` writes, lower-cased, from a word's start: its stem
    ("ceftriax"), a form of its class that stands for it (`specific_class`), or that form's
    shorthand ("SGLT2i" for dapagliflozin's "SGLT2 inhibitor")."""
    classes = specific_class(drug)
    shorthand = [short for form in classes for short in _CLASS_SHORTHAND.get(form, ())]
    return list(dict.fromkeys([drug_stem(drug), *classes, *shorthand]))


def writes_form(text: str, forms: Sequence[str]) -> bool:
    """Whether the lower-cased `text` writes one of `forms` (`drug_forms`) from a word's start:
    "ics" (inhaled corticosteroid) is not in "antibiotics"."""
    return any(re.search(rf"\b{re.escape(form)}", text) for form in forms)


def stems_with_full_forms(text: str) -> frozenset[str]:
    """The content stems of `text` and of the full forms of its shorthand ("STEMI" adds
    "elev", "myocardi", "infarct")."""
    full = " ".join(alternatives(word) for word in re.findall(r"[\w+/-]+", text))
    return content_stems(f"{text} {full}")


def source_names(title: str, source: str) -> frozenset[str]:
    """The names a clinician calls a guideline by: its organisations ("ATS/IDSA" -> "ATS",
    "IDSA"), a capitalised name its title opens with or puts in brackets ("GINA", "KDIGO",
    "Sepsis-3", "NICE"), and the proper name before its title's colon ("Surviving Sepsis
    Campaign"). An author list ("Wells PS et al.") names a paper, not a source."""
    names = set()
    if "et al" not in source:
        names.update(part.strip() for part in source.split("/") if _NAME_LIKE.fullmatch(part.strip()))
    opening = title.split()[:1]
    bracketed = [word for group in re.findall(r"\(([^)]*)\)", title) for word in group.split()]
    names.update(word for word in [*opening, *bracketed] if _CAPITALISED.fullmatch(word))
    lead = title.split(":", 1)[0].split()
    if ":" in title and 2 <= len(lead) <= 4 and all(word[:1].isupper() for word in lead):
        names.add(" ".join(lead))
    return frozenset(names)


# An organisation's name: an acronym ("BTS", "ATS") or capitalised words ("Endocrine Society").
_NAME_LIKE = re.compile(r"[A-Z]{2,}[A-Za-z]*|[A-Z][a-z]+(?: [A-Z][a-z]+)+")
# A name written with capitals and digits ("GINA", "Sepsis-3", "CG141"), not a plain word.
_CAPITALISED = re.compile(r"(?=\S*[A-Z]\S*[A-Z0-9])[A-Z][A-Za-z0-9-]{2,}")
# A name followed by a value that is no year labels a measurement ("ACR still around 450").
_MEASURED = re.compile(r"[^.;,?\d]{0,14}?(?!(?:19|20)\d\d\b)\d")
_YEAR = re.compile(r"\b(?:19|20)\d{2}\b")


def named_guidelines(
    question: str, guidelines: Iterable[tuple[str, str, int | None]]
) -> list[frozenset[str]]:
    """The guidelines `question` names, one set of titles per mention, in question order:
    the guidelines (title, source, year) it may mean. A mention is one of their
    `source_names` ("BTS wants temp under 37.5 but ATS/IDSA ..."; a name of several words by
    its first two, "Surviving Sepsis"), narrowed to the year standing beside it when one does
    ("the 2018 ACC/AHA cholesterol guideline"); a year beside a word of what a title is
    about and the word "guideline" ("the 2013 STEMI guideline"); or the word before
    "guideline" alone, when every stem of it (or of its full form) is what a title is about
    ("the aSAH guideline")."""
    guidelines = list(dict.fromkeys(guidelines))
    years = {found.start(): int(found.group(0)) for found in _YEAR.finditer(question)}
    mentions: dict[int, set[tuple[str, str, int | None]]] = {}
    for guideline in guidelines:
        title, source, _ = guideline
        for name in source_names(title, source):
            words = name.split()
            pattern = (
                rf"(?<![\w-]){re.escape(name)}(?![\w-])"
                if len(words) == 1
                else rf"(?i:\b{re.escape(' '.join(words[:2]))}\b)"
            )
            for found in re.finditer(pattern, question):
                if not _MEASURED.match(question, found.end()):
                    # not "ACR 410 mg/g": the albumin-to-creatinine ratio, not the ACR
                    mentions.setdefault(found.start(), set()).add(guideline)
    named = []
    for at, candidates in sorted(mentions.items()):
        beside = {year for start, year in years.items() if abs(start - at) <= _BESIDE}
        dated = {each for each in candidates if each[2] in beside}
        named.append(frozenset(each[0] for each in (dated or candidates)))
    for at, year in years.items():
        if any(abs(start - at) <= _BESIDE for start in mentions):
            continue
        after = question[at : at + _BESIDE + 20]
        if _GUIDELINE_WORD.search(after):
            about = stems_with_full_forms(after)
            dated = {title for title, _, each in guidelines if each == year and about & title_topics(title)}
            if dated:
                named.append(frozenset(dated))
    # "the aSAH guideline", "the chest pain guideline": what a title is about, by the word
    # before "guideline" (a name or a year before it was read above).
    for found in _ABOUT_GUIDELINE.finditer(question):
        if any(abs(start - found.start()) <= _BESIDE for start in [*mentions, *years]):
            continue
        word = found.group(1)
        about = (stems_with_full_forms(word) - content_stems(word)) or content_stems(word)
        if about:
            named_by = {title for title, _, _ in guidelines if about <= title_topics(title)}
            if named_by:
                named.append(frozenset(named_by))
    return named


_GUIDELINE_WORD = re.compile(r"\b(?:guidelines?|statement|consensus|report|standards)\b", re.IGNORECASE)
_ABOUT_GUIDELINE = re.compile(r"\b([A-Za-z][\w-]+)\s+guidelines?\b")
_BESIDE = 20  # characters between a year and the name or topic it dates
