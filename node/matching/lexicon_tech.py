"""Concept lexicon, part 2: energy, environment, ICT, biomedicine, manufacturing,
construction and mining.

As in ``lexicon_agri``, each concept joins the supplier's technical vocabulary with the
way a utility, a town, a clinic or a factory describes the problem ("villages without
electricity", "the river turns black", "roads crack every rainy season").
Syntax: see ``node.matching.concepts``.
"""

from __future__ import annotations

TECH_CONCEPTS: dict[str, str] = {
    # --- energy ----------------------------------------------------------------------
    "offgrid_power": "kerosene|candles|car batteries|off-grid|offgrid|no grid"
    "|rural electrification|no electricity"
    "|without electricity|without power|power cut|blackout|mini-grid|minigrid|microgrid"
    "|diesel genset|diesel generator|genset|villages+dark|electrify|grid+reach"
    "|household+electricity|pay-as-you-go|prepaid meter|electricity+village|power+village"
    "|unreliable+power|outage|điện|ไฟฟ้า|listrik|kuryente",
    "solar_power": "solar|photovoltaic|pv|solar panel|sunlight|sunshine|mppt|kwp|太阳能",
    "hydropower": "hydro|hydropower|micro-hydro|turbine|penstock|mountain stream|stream+water"
    "|stream+village|river flow|waterfall"
    "|head+flow|water wheel|run-of-river",
    "turbine_wear": "abrasion|silt erosion|sediment+turbine|runner|cavitation|overhaul"
    "|refurbish|worn+turbine|turbine+damage|turbine+wear|wear+turbine|coating+turbine"
    "|sediment-laden|silty|hvof|sediment+power plant",
    "reservoir_sediment": "reservoir sedimentation|bathymetr|echo sounder|sediment flushing"
    "|sluicing|sediment yield|reservoir+silt|reservoir+sediment|sediment management",
    "biomass_energy": "biomass|husk|gasification|gasifier|syngas|boiler fuel|pellet|briquette"
    "|burn+husk|husk+pile|agricultural residue|crop residue|bagasse|wood chip|sawdust|offcut"
    "|residue+fuel|waste+fuel|solid fuel|rice husk",
    "biogas": "biogas|manure+fuel|cooking gas|manure+cooking|dung+gas|anaerobic digestion"
    "|anaerobic digester|digester|methane capture"
    "|covered lagoon|biomethane|bio-cng|methane|uasb|ic reactor|anaerobic reactor"
    "|manure+gas|effluent+gas",
    "battery_storage": "battery storage|energy storage|bess|peak shaving|peak-load"
    "|demand charge|peak+tariff|peak+electricity|backup power|storage system"
    "|electricity bill|self-consumption|load shifting",
    "second_life_battery": "second-life|second life|retired battery|retired pack|used battery"
    "|used ev|repurpose|repurposed|echelon|old+batteries|used+batteries|retired+ev"
    "|state of health|battery+grading|reuse+batteries",
    "electric_mobility": "electric vehicle|ev|e-mobility|electric motorcycle|tricycle|tuk-tuk"
    "|jeepney|e-bike|electric scooter|electric bus|electric boat|electric propulsion"
    "|charging station|battery swap|battery swapping|swap station|swap cabinet"
    "|battery exchange|exchange+battery|charge+wait|two-wheeler|three-wheeler|drivetrain"
    "|minibus|e-trike|charged battery",
    "battery_technology": "lithium|lfp|lifepo4|sodium-ion|cathode|anode|battery cell"
    "|hard carbon|battery material|bms|battery management|cell+battery|ion battery",
    "street_lighting": "street light|streetlight|lighting|lamp|led light|led lamp|dark+road"
    "|road+dark"
    "|night+unsafe|light+night|lamppost|luminaire",
    "floating_solar": "floating|water surface|solar+reservoir|pv+pond|panel+water"
    "|evaporation+reservoir|floats|float|surface+reservoir",
    "biofuel": "biodiesel|fame|esterification|transesterification|used cooking oil"
    "|waste cooking oil|waste oil|free fatty acid|acid oil|cooking oil+waste|pfad"
    "|fatty acid distillate|acid value|en 14214|biofuel",
    "energy_cost": "bills+high|electricity bill|power bill|energy saving|energy efficiency"
    "|energy cost|fuel cost|fuel use"
    "|firewood+expensive|high+fuel|firewood|fuel+half|save+fuel|reduce+fuel|lpg|coal-fired"
    "|electricity cost|cut+energy",
    # --- environment -----------------------------------------------------------------
    "domestic_wastewater": "open drain|drain+smell|toilets|sewer|sewage|domestic wastewater"
    "|sanitation|septic|toilet|grey water"
    "|greywater|rural sanitation|package plant|mbbr|canal+smell|canal+dirty|village+wastewater"
    "|household+wastewater|wastewater+commune|decentralised treatment|decentralized treatment"
    "|nước thải|น้ำเสีย|air limbah|污水",
    "industrial_wastewater": "river+dirty|river+foam|fish+dying+river|river+smell"
    "|industrial wastewater|effluent|cod|bod|discharge+river"
    "|factory+pollut|river+black|fish kill|wastewater|discharge standard|effluent standard"
    "|wastewater treatment",
    "textile_dyeing": "dyeing|dye|textile|colour removal|color removal|colored+water"
    "|coloured+water|river+color|river+colour|decoloriz|indigo",
    "landfill_leachate": "leachate|landfill|dump site|dumpsite|garbage+juice|dump+seep"
    "|rubbish+liquid|waste+seep",
    "arsenic_water": "arsenic|tube well|tube-well|groundwater contamination|well water+sick"
    "|skin+lesion|well+poison|arsenicosis",
    "fluoride_water": "fluoride|fluorosis|teeth+stain|brown teeth|mottled teeth|bones+crippl",
    "drinking_water": "dirty water|unsafe water|water+sick|diarrhoea|diarrhea|cholera"
    "|water+unsafe|drinking water|potable|safe water|water supply|clean water|water filter"
    "|fresh water|freshwater+no|salty+well|desalination|desalinate|reverse osmosis|ro"
    "|rainwater|brackish|water treatment|household filter|water purif",
    "sewage_sludge": "sludge|biosolids|dewatered|sludge+disposal|sludge drying",
    "solid_waste": "dump|waste+burn+open|municipal waste|municipal solid waste|garbage|trash"
    "|household waste"
    "|landfill|waste-to-energy|incineration|incinerator|rubbish|dump+full|waste+pile"
    "|waste facility|msw|grate|waste+burn",
    "plastic_waste": "plastic|pyrolysis|chemical recycling|plastic+pollution|plastic bag"
    "|polyolefin|pe/pp|packaging waste",
    "air_quality": "air quality|pm2.5|pm2|haze|smoke|smog|particulate|burning+field"
    "|open burning|agricultural burning|forest fire|peat fire|hotspot|air pollution"
    "|straw burning|dispersion model|emission",
    "peatland_fire": "peat|peatland|smoulder|smolder|fire+peat|fire danger|wildfire|bushfire"
    "|fire brigade|fire+forest",
    "erosion_control": "erosion|landslide|slope|embankment|riverbank|soil+washed"
    "|bank+collapse|geotextile|revegetation|bioengineering|road cut|slope protection|gully",
    "early_warning": "early warning|flood|overflow|river+overflow|rising river|flood+warn|alert"
    "|siren|warn+villagers|rising water"
    "|water level|rain gauge|evacuate|evacuation|disaster risk|flash flood|warning system"
    "|alarm|monitoring station",
    "water_loss": "non-revenue water|nrw|leak|water loss|lost water|unbilled|water meter"
    "|meter reading|pipes+leak|illegal connection|water+theft|district metered|tamper"
    "|billing|water utility",
    "acid_mine_drainage": "acid mine drainage|amd|orange+water|acidic+water+mine"
    "|sulphate-reducing|sulfate-reducing|passive treatment|limestone drain|constructed wetland"
    "|mine+water+acid|mine closure",
    "mine_tailings": "tailing|tailings dam|dewater|dry stacking|filter press|dam+fail"
    "|tailings+water|water recovery+mine|mine water",
    "mercury_free_gold": "mercury|amalgamation|artisanal gold|small-scale mining"
    "|small-scale gold|gold+mercury|cyanide|gravity concentration|miners+poison|minamata"
    "|gold recovery|shaking table|alluvial",
    "oily_waste": "oily sludge|oil recovery|tank bottom|tank cleaning|petroleum hydrocarbon"
    "|oil+sludge|drilling waste|thermal desorption|tph|oilfield",
    # --- ICT -------------------------------------------------------------------------
    "e_government": "paperwork|queues+office|red tape|bureaucracy|files+lost|e-government"
    "|egovernment|document workflow|official letter"
    "|electronic signature|digital signature|electronic seal|paper+slow|documents+lost"
    "|archive|paperless|pki|government+documents|digital government|approval workflow"
    "|document management|correspondence",
    "ocr_digitisation": "ocr|digitization|digitisation|scanned|handwritten|paper form"
    "|typing+data|data entry|archive+paper|document digitization|text recognition",
    "speech_language": "speech recognition|asr|transcription|voicebot|call centre|call center"
    "|phone call|text-to-speech|chatbot|speech|voice|language model|dialect|accent",
    "digital_payment": "payment|qr|conductor|ticket|cash+bus|cash+fare|fare+cash|e-wallet"
    "|ewallet|mobile money|cashless|fare|fintech"
    "|settlement|cash+handling|cash+theft|prepaid|wallet|top-up|merchant",
    "traffic_parking": "gridlock|stuck+traffic|traffic lights|traffic|congestion|parking"
    "|intersection|signal|traffic jam|jam"
    "|cars+circling|drivers+space|green wave|queue length",
    "smart_city": "smart city|operations centre|dashboard|urban management|cctv"
    "|city+data|control room|command centre|city hall",
    "traceability": "traceability|trace|origin|blockchain|qr code label|recall|prove+origin"
    "|fake+product|counterfeit|where+came|provenance|label",
    "gnss_positioning": "gnss|gps|rtk|cors|surveying|positioning|cadastral|beidou"
    "|accurate+position|land+boundary|centimetre|centimeter|survey",
    "remote_sensing": "satellite|remote sensing|imagery|sentinel|landsat|map+crops"
    "|land use|land-use|aerial image|classification+crop|earth observation",
    "telemedicine": "specialist|hospital+far|patients+travel|far+hospital|telemedicine"
    "|telehealth|teleconsultation|remote consultation"
    "|doctor+far|no+doctor|specialist+far|rural clinic|island+clinic|health unit|ecg"
    "|e-prescription|consultation",
    "drones": "drone|uav|unmanned aerial|quadcopter|octocopter|multirotor",
    "border_logistics": "logistics|truck|border gate|customs|queue+truck|yard|booking"
    "|cross-border trade|border crossing|border trade|time slot",
    "machine_vision_ai": "machine vision|computer vision|image recognition|camera+ai"
    "|deep learning|ai model|convolutional|classify+image|ai-assisted|vision model",
    "iot_sensors": "iot|sensor|lora|lorawan|nb-iot|wireless|telemetry|remote monitoring|4g",
    # --- biomedicine ------------------------------------------------------------------
    "rapid_diagnostics": "quick test|test+spot|lab+far|laboratory+far|results+late|rapid test"
    "|point-of-care|lateral flow|diagnostic kit|screening"
    "|test+quickly|result+minutes|no+laboratory|antigen|antibody|diagnostic|test kit"
    "|rapid diagnostic|elisa|pcr",
    "dengue": "dengue|mosquito+fever|aedes|ns1",
    "hepatitis": "hepatitis|hbsag|hcv|liver+infection",
    "capsules_pharma": "capsule|gelatin|hpmc|vegetarian capsule|excipient|tablet|softgel",
    "halal": "halal|porcine|pork|pig+dna|kosher|gelatin source|non-animal",
    "wound_care": "wound|dressing|burn injury|bandage|healing|ulcer",
    "traditional_medicine": "traditional medicine|herbal medicine|moxibustion|acupuncture"
    "|zhuang|jamu|ayurved|folk medicine|medicated thread|healer",
    "herbal_extract_qc": "batch+strength|potency+vary|quality+inconsistent|uneven+strength"
    "|extract|extraction|standardization|standardised|standardized"
    "|marker compound|purification|active ingredient|consistent+potency|batch+vary"
    "|quality control|hplc|fingerprint|chromatograph|adulteration|gmp|pharmacopoeia"
    "|assay|potency",
    "cosmetics": "cosmetic|sunscreen|skin care|skincare|cream|uv protection|spf|beauty",
    "biologics": "antivenom|vaccine|plasma|immunoglobulin|snakebite|serum|biologic",
    "plant_cell_culture": "bioreactor|cell culture|adventitious root|cell suspension"
    "|in vitro|in-vitro|organ culture|grow+lab|saponin|ginsenoside|ginseng|panax",
    "food_authentication": "authentication|authentic|adulterant|adulteration|fraud"
    "|counterfeit|fake|dna barcod|species identification|mislabel",
    # --- manufacturing ----------------------------------------------------------------
    "garment_textile": "garment|fabric|cutting room|apparel|sewing|textile factory|knitwear"
    "|knitted|woven|spreading|marker making",
    "visual_inspection": "inspection|defect detection|defect|camera inspection"
    "|defects+missed|manual+inspection|human+inspector|quality inspection|reject"
    "|visual check",
    "welding_automation": "welding|welder|robot|robotic|automation|cobot|collaborative robot"
    "|welders+shortage|seam tracking|weld",
    "foundry_casting": "foundry|casting|mould|mold|pattern|3d printing|additive manufacturing"
    "|spare part+lead time|binder-jet|sand core",
    "timber_processing": "timber|wood|lumber|sawn|teak|rubberwood|sawmill|plywood"
    "|particleboard|mdf|furniture|kiln drying|wood preservation|termite|wood+crack"
    "|wood+warp|timber+split|boron|veneer",
    "handicraft": "handicraft|natural dye|natural colour|natural color|blue+dye|colour+weaver"
    "|color+weaver|dye+weaver|weaving|silk dyeing|artisan|craft",
    "vehicle_assembly": "vehicle assembly|chassis|ckd|skd|local assembly|assembly plant",
    # --- construction -----------------------------------------------------------------
    "low_cost_housing": "low-cost housing|affordable housing|low-cost house|housing|house"
    "|walling|cheap+house|poor+family+house|shelter|dwelling|home+build",
    "unfired_blocks": "interlocking block|compressed earth|soil-cement|unfired brick"
    "|geopolymer|brick kiln+smoke|fired brick|aac|without firing|unfired|block press"
    "|building block|masonry block|laterite",
    "cement_replacement": "cement|pozzolan|supplementary cementitious|fly ash|rice husk ash"
    "|slag|concrete+cheap|low-carbon concrete|clinker|ready-mix|mix design",
    "modular_building": "modular|prefabricated|prefabrication|prefab|steel frame"
    "|build+quickly|school|classroom|clinic+build|container+building",
    "bamboo_construction": "bamboo|engineered bamboo|laminated bamboo|glulam",
    "road_construction": "road|pavement|asphalt|bitumen|road base|rutting|pothole"
    "|road+crack|road+wash|rural road",
    "seismic_safety": "earthquake|seismic|retrofit|building+collapse|quake",
    "bridges": "bridge|footbridge|crossing+river|river+cross|suspension bridge",
    "industrial_byproduct_reuse": "red mud|bauxite residue|fly ash|slag|industrial solid waste"
    "|by-product+reuse|mine waste",
    # --- mining -----------------------------------------------------------------------
    "potash": "potash|potassium|kcl|carnallite|sylvinite|muriate|evaporite|solution mining"
    "|brine|salt deposit",
    "nickel_laterite": "nickel|laterite|limonite|hpal|cobalt|mhp|mixed hydroxide"
    "|battery-grade|hydrometallurgy|leaching|autoclave",
}
