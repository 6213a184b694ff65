"""The curated lexicon of sanitizers.topics: per topic, lines of `weight: phrase, phrase, …`.

A phrase is words matched on word boundaries after the same normalization as the text (case-folded,
apostrophes split, plural/possessive endings removed); a word ending in `*` matches any word it
starts (`diagnos*`: diagnosed, diagnosis). Weights: 1.0 a phrase that on its own says the topic
("chemotherapy"), 0.5 one that makes it likely ("doctor"), 0.2–0.4 weak evidence that needs company
("court", "bank"). A negative weight cancels a weak word in a known harmless phrase ("european union").
Topics follow GDPR Art. 9 (special categories) and Art. 10 (criminal offences → legal), plus finance
and children.
"""

from __future__ import annotations

_NATIONALITIES = (
    "korean mexican nigerian chinese japanese indian pakistani bangladeshi filipino vietnamese thai arab "
    "moroccan algerian egyptian ethiopian somali ghanaian kenyan jamaican haitian cuban puerto_rican "
    "dominican colombian brazilian peruvian turkish kurdish iranian persian afghan syrian lebanese irish "
    "italian polish ukrainian russian greek german french scottish welsh african asian european caribbean"
)

_RAW: dict[str, str] = {
    "health": """
        1.0: diagnos*, chemotherapy, chemo, cancer, tumor, tumour, oncolog*, diabetes, diabetic, prediabet*, hiv,
             hepatitis, alzheimer*, dementia, parkinson*, epilep*, seizure*, depression, depressed, anxiety disorder,
             panic attack*, bipolar, schizophren*, ptsd, adhd, autism, autistic, ocd, anorexia, bulimia,
             eating disorder, suicid*, self harm, psychiatr*, therapist, antidepressant*, pregnan*, miscarriage,
             abortion, infertil*, ivf, addiction, addicted, rehab, overdose, sobriety, asthma, copd, heart attack,
             heart disease, hypertension, insulin, metformin, sertraline, prozac, xanax, adderall, ritalin,
             lithium, opioid*, methadone, mental health, mental illness, erectile dysfunction, biopsy,
             multiple sclerosis, hiv positive, std, sti, chlamydia, herpes, blood transfusion*, sick leave,
             hospitali*, mri, ct scan, brca*, cholesterol, blood sugar, blood test*, blood pressure, migraine*,
             physiotherap*, physical therapy, surgery, surgeon, prescri*, medication*, insomnia, chronic pain,
             pediatrician, paediatrician, dialysis, transplant, stroke, concussion, disabilit*, wheelchair,
             hormone therapy, symptom*
        0.7: illness, disease, disorder, infection, fever, sober, allerg*, obes*, underweight, injur*, fracture*,
             hospital, x ray, physician, dose, dosage, covid, deaf, hearing aid, pediatric*, paediatric*, clinic,
             doctor, hormone*, vomit*, nausea, therapy
        0.5: patient, sick, chronic, pain, nurse, pill*, cough, overweight, bmi, genetic*, mutation, blind,
             vaccin*, can t sleep, weight loss
    """,
    "finance": """
        1.0: debt*, student loan*, mortgage*, foreclos*, bankrupt*, insolven*, credit score, overdraft*, overdrawn,
             debt collector*, collection agency, minimum payment*, missed payment*, loan payment*, payslip,
             net worth, 401 k, food stamp*, account balance, bank account, credit card debt
        0.7: loan*, salary, salaries, income, paycheck, owe, owed, owing, tax return*, savings, pension,
             retirement account, finance, financial*, unemploy*, welfare, inheritance, alimony, child support,
             can t pay, unpaid, late payment*, tax, taxes, wage*, invest*, afford, lost my job, rent,
             credit card*, evict*
        0.4: irs, ira, budget, index fund*, portfolio, stock*, bank, money, payment*, benefits, assistance,
             retire*, owe me, fee*, bill*, cost*
       -0.4: credit union
    """,
    "legal": """
        1.0: arrest*, convict*, felony, felonies, misdemeanor*, criminal record, criminal trial, charged with,
             plead guilty, pleaded guilty, lawsuit*, sue, suing, sued, court hearing, court date, probation,
             parole, jail, prison, restraining order, subpoena*, expunge*, deport*, dui, dwi, shoplift*,
             custody agreement, wrongful termination, bail, warrant, overstay*, overstayed, asylum, indict*,
             prosecut*, defendant, plaintiff, litigation, legal action, criminal charge*
        0.7: lawyer*, attorney*, solicitor, divorce, custody, assault, theft, fraud, testify, immigration, visa,
             criminal, police, guilty, plead*, evict*, green card, speeding ticket, settlement, illegal
        0.4: court, trial, judge, legal, lawful, violated, sentence*, citation, notary, contract dispute
       -0.5: tennis court, basketball court, food court, court yard, courtyard, squash court, court of appeal*
    """,
    "sexuality": """
        1.0: gay, lesbian, bisexual, queer, lgbt*, transgender, trans woman, trans man, non binary, nonbinary,
             asexual, pansexual, homosexual, sexual orientation, gender identity, sex life, erectile dysfunction,
             libido, intercourse, polyamor*, gender transition, come out to, came out to, coming out,
             sexual health, sexually
        0.7: heterosexual, sexual, sex, pride parade, open relationship, opening our relationship, kink*, porn*,
             contracepti*, condom*, trans, dating app, sexuality, fetish*
        0.3: come out, came out, transition*, hookup*, partner
    """,
    "religion": """
        1.0: muslim*, islam*, catholic*, catholicism, protestant*, jewish, judaism, hindu*, buddhis*, sikh*,
             atheis*, agnostic, mormon*, jehovah*, evangelical*, mosque*, synagogue*, ramadan, kosher, halal,
             quran, koran, torah, religio*, imam, rabbi, hijab, sabbath, baptized, baptised, baptism, pray*,
             christian*, church*, eid
        0.7: jew, jews, temple, bible, pastor, priest, prayer*, passover, diwali, spiritual*, faith, god,
             converted to, convert to, scripture*, worship*, congregation, parish, bar mitzvah, bat mitzvah
        0.3: convert*, holy, blessing*, easter, christmas, fast, fasting, funeral
    """,
    "politics": """
        1.0: political*, voted for, vote for, democrat*, republican*, labour party, labor party, tory, tories,
             socialist*, communis*, libertarian*, far right, far left, left wing, right wing, green party,
             political party, political view*, canvass*, maga, anti government, campaign for, partisan,
             party member*, leftist*
        0.7: conservative*, liberal*, politics, election*, ballot*, protest*, activis*, candidate, senator,
             congressman, congresswoman, trump, biden, brexit, extremis*, nationalis*, demonstration*,
             city council, running for, petition*, campaign*, vote, voted, voting
        0.3: rally, rallies, fundraiser, donated to, council, party, government, mp, platform
       -0.3: birthday party, dinner party, party on, pool party, tea party, third party, party supplies
    """,
    "biometric": """
        1.0: biometric*, fingerprint*, face scan*, facial recognition, face recognition, face id, iris scan*,
             iris recognition, retina*, retinal, voiceprint*, dna, genetic test*, genetic testing, genome*,
             saliva sample, palm scan*, palm vein, facial scan*, face scanning, gait recognition
        0.7: iris, voice recognition, genetic*, selfie verification, facial, ancestry
        0.3: scan*, verify my identity, unlock*
    """,
    "children": """
        1.0: my son, my daughter, our son, our daughter, my kid*, our kid*, my child*, our child*, toddler*,
             my baby, our baby, newborn*, infant*, daycare, preschool*, kindergarten*, my little girl,
             my little boy, stepson, stepdaughter, teenage son, teenage daughter, year old son,
             year old daughter, baby girl, baby boy, wets the bed, bedwetting, pediatrician, paediatrician,
             child support, babysitter*, my teen*, our teen*, foster care
        0.7: child*, kid*, son, daughter, baby, babies, teen*, teenage*, minor*, nanny, grandchild*, foster*,
             adopt*, pediatric*, paediatric*, custody, school
        0.3: boy, girl, nursery, bullied, grade, playground, year old
       -0.3: grad school, business school, school project manager
    """,
    "ethnicity": """
        1.0: racial*, racism, racist*, ethnic*, african american, hispanic*, latino*, latina*, latinx,
             asian american, native american, indigenous, aboriginal, romani, gypsy, gypsies, people of color,
             person of color, skin color, skin colour, black woman, black man, black people, white supremac*,
             of descent, descent
        0.7: tribe*, tribal, minority, minorities, roma, heritage, immigrant*, where i m really from, race
        0.4: discriminat*, ancestry, origin*, black, mixed race
    """,
    "trade_union": """
        1.0: trade union*, labor union*, labour union*, union member*, union rep*, union representative*,
             shop steward*, collective bargaining, collective agreement*, teamster*, unioniz*, unionis*,
             union dues, our union, the union, joined the union, join a union, joining a union, on strike,
             picket*, strike ballot
        0.7: union*, strike*, walkout, grievance*, works council
       -0.7: european union, soviet union, credit union, union station, union square, union jack,
             state of the union, african union
    """,
}


def lexicon() -> dict[str, dict[str, float]]:
    """Topic → phrase → weight, parsed from the table above (nationality phrases added to ethnicity)."""
    parsed: dict[str, dict[str, float]] = {}
    for topic, block in _RAW.items():
        terms: dict[str, float] = {}
        weight = 0.0
        for line in block.strip().splitlines():
            head, sep, rest = line.partition(":")
            if sep and head.strip().lstrip("-").replace(".", "").isdigit():
                weight, line = float(head), rest
            for phrase in line.split(","):
                if phrase.strip():
                    terms[phrase.strip()] = weight
        parsed[topic] = terms
    for nationality in (n.replace("_", " ") for n in _NATIONALITIES.split()):
        for form in (f"half {nationality}", f"{nationality} descent", f"{nationality} heritage", f"{nationality} origin"):
            parsed["ethnicity"][form] = 1.0
    return parsed
